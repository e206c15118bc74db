// PaintsTensor
