"""The b-tag decision in firmware and the end-to-end top (issue #19, items 3 and 4).

``score``: the max-form score of the logits and its working points, emulated in integers;
``frontend``: what ``trigger_top`` takes from the input side; ``hls``: ``decision.h``,
``trigger_top`` and its C simulation; ``cost``: the block as Verilog, checked and costed with
Yosys; ``stage``: the ``decision`` stage (``hls_projects/<model>/decision/``); ``physics``:
rejections of the firmware decision against the exact D_b. See docs/decision.md.
"""
