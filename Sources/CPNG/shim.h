// CPNG: libpng for PaintsRaster. Decoding goes through libpng's full read API in cpng_decode_rgba8 below, whose
// setjmp/longjmp error handling stays inside C; encoding uses the simplified (png_image_*) write API, which needs none.
#ifndef CPNG_SHIM_H
#define CPNG_SHIM_H

#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// PNG_FORMAT_RGBA and PNG_IMAGE_VERSION are compound macros Swift cannot import.
static const png_uint_32 CPNG_FORMAT_RGBA = PNG_FORMAT_RGBA;
static const png_uint_32 CPNG_IMAGE_VERSION = PNG_IMAGE_VERSION;
static const png_uint_32 CPNG_IMAGE_FLAG_FAST = PNG_IMAGE_FLAG_FAST;

/// What cpng_decode_rgba8 returns.
/// Decoded (or, without a buffer, the header read and within max_pixels).
static const int CPNG_DECODE_OK = 0;
/// Not a PNG, or a corrupt one: the message says why (libpng's text).
static const int CPNG_DECODE_FAILED = 1;
/// The header declares more than max_pixels pixels (width and height are set); nothing was allocated.
static const int CPNG_DECODE_TOO_LARGE = 2;
/// The header is valid but the buffer given is smaller than width*height*4 bytes (width and height are set).
static const int CPNG_DECODE_BUFFER_TOO_SMALL = 3;

/// libpng's own limits while reading. Width and height: the PNG maximum (2^31-1), because the caller's max_pixels
/// check on width*height is the real bound and must see the true header to report "too large". Ancillary chunk
/// allocations: 8 MB (libpng's default); at most 1000 ancillary chunks kept.
#define CPNG_USER_DIMENSION_MAX 0x7fffffffU
#define CPNG_CHUNK_MALLOC_MAX 8000000U
#define CPNG_CHUNK_CACHE_MAX 1000U

/// State shared with libpng's callbacks: the bytes being read, the error message and the last warning.
typedef struct {
    const unsigned char *data;
    size_t size;
    size_t offset;
    char *message;
    size_t message_size;
    char warning[128];
} cpng_reader;

// The error text, followed by the last warning when there was one (libpng explains "Invalid IHDR data" in warnings).
static void cpng_error(png_structp png, png_const_charp text) {
    cpng_reader *reader = (cpng_reader *)png_get_error_ptr(png);
    if (reader != NULL && reader->message != NULL && reader->message_size > 0) {
        if (reader->warning[0] != 0)
            snprintf(reader->message, reader->message_size, "%s (%s)", text != NULL ? text : "libpng error",
                     reader->warning);
        else
            snprintf(reader->message, reader->message_size, "%s", text != NULL ? text : "libpng error");
    }
    png_longjmp(png, 1);
}

// Warnings (CRC errors in ancillary chunks, benign errors) do not stop decoding and are not printed; the last one is kept.
static void cpng_warning(png_structp png, png_const_charp text) {
    cpng_reader *reader = (cpng_reader *)png_get_error_ptr(png);
    if (reader != NULL) snprintf(reader->warning, sizeof reader->warning, "%s", text != NULL ? text : "");
}

static void cpng_read(png_structp png, png_bytep out, size_t length) {
    cpng_reader *reader = (cpng_reader *)png_get_io_ptr(png);
    if (length > reader->size - reader->offset) png_error(png, "unexpected end of PNG data");
    memcpy(out, reader->data + reader->offset, length);
    reader->offset += length;
}

/// Decodes the PNG in data[0..<size] to 8-bit straight RGBA, exactly the stored samples with no colour management:
/// grey is expanded to RGB, palettes to RGB(A) with tRNS alpha, tRNS colour keys of grey and RGB images become alpha 0,
/// bit depths 1/2/4 are scaled to 8, 16-bit samples are reduced to 8 with rounding (png_set_scale_16), Adam7 interlacing
/// is undone, and gAMA, cHRM, sRGB, iCCP (every ancillary chunk but tRNS) are skipped: CRC-checked, not interpreted.
///
/// The chunks up to the first IDAT are read first and width*height checked against max_pixels before anything is
/// allocated. With pixels == NULL only that much is read (width and height set, CPNG_DECODE_OK or CPNG_DECODE_TOO_LARGE).
/// Otherwise the rows are written to pixels, which must hold capacity >= width*height*4 bytes (stride width*4).
/// Data after the last row of pixels (later chunks, IEND) is not read: a missing IEND or trailing bytes are accepted.
/// Critical chunks (IHDR, PLTE, IDAT) with a bad CRC, truncated data and bad zlib data fail.
/// On failure, message (message_size bytes, NUL-terminated) holds libpng's reason.
static inline int cpng_decode_rgba8(const void *data, size_t size, uint64_t max_pixels, unsigned char *pixels,
                                    size_t capacity, png_uint_32 *width, png_uint_32 *height, char *message,
                                    size_t message_size) {
    cpng_reader reader = {(const unsigned char *)data, size, 0, message, message_size, {0}};
    // Row pointers into the caller's buffer, set after setjmp and freed on the longjmp path too: volatile.
    png_bytep *volatile rows = NULL;
    if (message != NULL && message_size > 0) message[0] = 0;
    *width = 0;
    *height = 0;
    if (data == NULL || size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        if (message != NULL && message_size > 0) {
            strncpy(message, "not a PNG (bad signature)", message_size - 1);
            message[message_size - 1] = 0;
        }
        return CPNG_DECODE_FAILED;
    }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, cpng_error, cpng_warning);
    if (png == NULL) {
        if (message != NULL && message_size > 0) {
            strncpy(message, "out of memory", message_size - 1);
            message[message_size - 1] = 0;
        }
        return CPNG_DECODE_FAILED;
    }
    png_infop info = png_create_info_struct(png);
    if (info == NULL || setjmp(png_jmpbuf(png))) {
        free(rows);
        png_destroy_read_struct(&png, info != NULL ? &info : NULL, NULL);
        if (message != NULL && message_size > 0 && message[0] == 0) {
            strncpy(message, "out of memory", message_size - 1);
            message[message_size - 1] = 0;
        }
        return CPNG_DECODE_FAILED;
    }
    png_set_read_fn(png, &reader, cpng_read);
    png_set_user_limits(png, CPNG_USER_DIMENSION_MAX, CPNG_USER_DIMENSION_MAX);
    png_set_chunk_malloc_max(png, CPNG_CHUNK_MALLOC_MAX);
    png_set_chunk_cache_max(png, CPNG_CHUNK_CACHE_MAX);
    // CRC errors: fatal in critical chunks, a warning (chunk dropped) in ancillary ones; benign errors warn.
    png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_WARN_DISCARD);
    png_set_benign_errors(png, 1);
    // Skip every ancillary chunk except tRNS (libpng keeps handling IHDR, PLTE, tRNS, IDAT and IEND): no gAMA, cHRM,
    // sRGB or iCCP can change the samples, and no text or profile is decompressed.
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);

    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    *width = w;
    *height = h;
    if ((uint64_t)w * (uint64_t)h > max_pixels) {
        png_destroy_read_struct(&png, &info, NULL);
        return CPNG_DECODE_TOO_LARGE;
    }
    if (pixels == NULL) {
        png_destroy_read_struct(&png, &info, NULL);
        return CPNG_DECODE_OK;
    }
    if ((uint64_t)w * (uint64_t)h > (uint64_t)(capacity / 4)) {
        png_destroy_read_struct(&png, &info, NULL);
        return CPNG_DECODE_BUFFER_TOO_SMALL;
    }

    int color_type = png_get_color_type(png, info);
    png_set_expand(png);   // palette -> RGB, grey 1/2/4 -> 8 bits, tRNS -> alpha channel
    png_set_packing(png);  // one sample per byte for anything still packed
    png_set_scale_16(png); // 16 -> 8 bits: (v * 255 + 32895) >> 16, i.e. round(v * 255 / 65535)
    png_set_gray_to_rgb(png);
    if ((color_type & PNG_COLOR_MASK_ALPHA) == 0 && !png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 4 || png_get_bit_depth(png, info) != 8 ||
        png_get_channels(png, info) != 4)
        png_error(png, "unexpected row layout after transformations");

    rows = (png_bytep *)malloc(sizeof(png_bytep) * (size_t)h);
    if (rows == NULL) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * (size_t)w * 4;
    png_read_image(png, rows);
    // png_read_end is not called: the last IDAT's CRC was checked when its final row was read, and what follows
    // (text chunks, IEND) does not change the pixels.
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return CPNG_DECODE_OK;
}

#endif
