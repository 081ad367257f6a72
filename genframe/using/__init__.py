"""Using a trained model: load, sample (streamed), evaluate on the ruler, score and detect, complete
(inpaint, denoise), export, plot and sweep.
"""
