/* runtime/sanitizer.h: which sanitizers this build runs under, decided once. */
#ifndef COIL_RUNTIME_SANITIZER_H
#define COIL_RUNTIME_SANITIZER_H

#if defined(__SANITIZE_ADDRESS__)
#define COIL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COIL_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define COIL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define COIL_TSAN 1
#endif
#endif

#ifdef COIL_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef COIL_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#endif
