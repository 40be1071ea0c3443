"""Tests of the LAPOR! line, the PSC 119 / BPBD hotline console and the hotline log import."""
