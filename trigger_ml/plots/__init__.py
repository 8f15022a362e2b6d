"""Performance plots in the field's look (mplhep style, puma's conventions).

- :mod:`trigger_ml.plots.curves`: the numbers (rejection curves, binomial bands, ratios,
  working-point cuts, performance in pT bins), unit-tested on their own;
- :mod:`trigger_ml.plots.style`: the style, the neutral "trigger-ml simulation" sample label, saving;
- :mod:`trigger_ml.plots.roc`, :mod:`~trigger_ml.plots.discriminant`, :mod:`~trigger_ml.plots.vs_pt`,
  :mod:`~trigger_ml.plots.cost`: one kind of plot each;
- :mod:`trigger_ml.plots.project`: every plot of an HLS project (the hls stage calls it).
"""
