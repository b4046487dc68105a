"""Tests run offline in a fresh cache folder per session (tiny models' profiles, the real model's conversion)."""

from __future__ import annotations

from vaembed.testing import use_test_cache

use_test_cache()
