"""Trigger-level (Level-1) tracks: the CMS Phase-2 L1 track word, the trigger's jet and vertex
words, and the preprocessing from track words to network inputs, defined once in integer
arithmetic and run both in Python (training) and as generated HLS C++ (``l1_preprocess.h``).

docs/l1-tracks.md describes the formats, their sources and the assumptions.
"""
