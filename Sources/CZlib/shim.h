// The system zlib (zlib1g-dev), for RaftStorage's snapshot files. deflateInit and
// inflateInit are macros that Swift cannot call, so they are wrapped here.
#ifndef CZLIB_SHIM_H
#define CZLIB_SHIM_H
#include <zlib.h>

static inline int czlib_deflate_init(z_stream *stream, int level) {
    return deflateInit(stream, level);
}

static inline int czlib_inflate_init(z_stream *stream) {
    return inflateInit(stream);
}
#endif
