// CPNG: libpng's simplified (png_image_*) API, seen only by PaintsRaster.
#include <png.h>

// PNG_FORMAT_RGBA and PNG_IMAGE_VERSION are compound macros Swift cannot import.
static const png_uint_32 CPNG_FORMAT_RGBA = PNG_FORMAT_RGBA;
static const png_uint_32 CPNG_IMAGE_VERSION = PNG_IMAGE_VERSION;
static const png_uint_32 CPNG_IMAGE_FLAG_FAST = PNG_IMAGE_FLAG_FAST;
