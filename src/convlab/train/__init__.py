"""``convlab train``: a stack trained as a classifier, its kernels and feature maps logged as
they learn.

The step is the training step throughout (the number of optimizer steps taken, as the lesson
counts ``total_train_step``), so TensorBoard's step slider is time: ``train/loss`` and
``train/accuracy`` every step; ``test/loss``, ``test/accuracy`` and a confusion matrix at each
evaluation; at each snapshot (step 0 included) the kernels of every conv stage, on one fixed
range per stage, and every stage's view of one fixed probe batch from the eval set. ``model.pt``
(a state_dict, replaced atomically) is saved at each evaluation and at the end.

:mod:`.plan` checks everything (:func:`~convlab.train.plan.plan_training`) before any data is
loaded; :mod:`.data` reads the images it trains on and holds its evaluation set (a split, or
images held out); :mod:`.evaluation` is one pass over the evaluation set and what it logs (the
confusion matrix, the mistakes, the least sure right answers); :mod:`.report` is what the run
says (each epoch's line, the time left, the advice at the end); :mod:`.run` is the run: the
steps, the snapshots, model.pt. torch is imported inside the functions.
"""
