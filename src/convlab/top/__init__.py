"""``convlab top``: what each channel looks for, as the dataset patches that excite it most
(Zeiler & Fergus 2014): running.py (one streaming pass, a running top-k per channel), patches.py
(each top value's input window, cropped), sheet.py (the picture per stage), plan.py (what it will
show, before any data), result.py (what a pass found, as pictures, tables and JSON), run.py (the
pass and the run).
"""
