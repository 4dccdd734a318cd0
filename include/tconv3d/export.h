/*
 * TCONV3D_API marks what libtconv3d.so exports. The library is built with
 * -fvisibility=hidden, so everything else (the plan, the emitters, the
 * runtime) stays inside it; the static library is unaffected. Plain C, so the
 * C API header can use it too.
 */
#ifndef TCONV3D_EXPORT_H_
#define TCONV3D_EXPORT_H_

#if defined(__GNUC__) || defined(__clang__)
#define TCONV3D_API __attribute__((visibility("default")))
#else
#define TCONV3D_API
#endif

#endif /* TCONV3D_EXPORT_H_ */
