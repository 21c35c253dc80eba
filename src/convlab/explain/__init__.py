"""The arithmetic of one layer, explained: what ``convlab explain`` prints and every run logs.

Built on :mod:`convlab.geometry` (the output-size formula, where each window sits),
:mod:`convlab.upsampling` (going back up) and :mod:`convlab.layers` (the shape checks): this
package says what each window reads, what it costs and what it leaves out, per layer family.
:mod:`.explanation` is what is said about any layer (and how rows are listed);
:mod:`.inputs` the input explained (--size, --channels, or the dataset's images);
:mod:`.windows` Conv2d and the pools, windows sliding over the input; :mod:`.unpooling`
MaxUnpool2d; :mod:`.transposed` ConvTranspose2d. No torch here, so ``convlab explain``
answers instantly; the tests hold every number against a real module.
"""
