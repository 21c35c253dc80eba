"""convlab predict: your own images through a trained classifier: what it says, and why.

:mod:`.images` finds the images and reads each as the training images were read, saying what
was done to it; :mod:`.attributions` is the registry of attribution methods over captum's
classes; :mod:`.trace` works out how one value of one stage was computed; :mod:`.pictures`
draws the overlays and the sheet; :mod:`.report` is what reaches the terminal, the run's texts
and ``--json``; :mod:`.plan` decides what will run (the model, its classes, every check) before
an image is decoded; :mod:`.run` puts the images through the model in batches and logs the run.
"""
