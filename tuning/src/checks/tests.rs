//! Checks against fake /proc and /sys trees (sample files, not mocks).
