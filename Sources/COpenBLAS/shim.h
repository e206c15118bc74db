// COpenBLAS: the CBLAS interface of OpenBLAS, seen only by PaintsTensor.
#include <cblas.h>
