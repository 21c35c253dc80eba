"""The notebook API (``import convlab``; ``convlab.conv(...)``): :mod:`.api` the commands as Python
functions, :mod:`.results` the results that show themselves, :mod:`.interact` the sliders.
``convlab/__init__.py`` binds the API's names; nothing is imported from here under another name.
"""
