"""The notebook API (``import convlab``; ``convlab.conv(...)``): :mod:`.api` the commands that run as
Python functions, :mod:`.arithmetic` explain and demo, :mod:`.server` TensorBoard in the notebook,
:mod:`.results` the results that show themselves (:mod:`.charts` the pictures they draw), :mod:`.interact`
the sliders.
``convlab/__init__.py`` binds the API's names; nothing is imported from here under another name.
"""
