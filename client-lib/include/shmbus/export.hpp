// Symbol visibility for libshmbus. The library is built with hidden default visibility;
// only what carries SHMBUS_EXPORT is part of its ABI.
#pragma once

#if defined(SHMBUS_BUILDING_LIBRARY)
#define SHMBUS_EXPORT __attribute__((visibility("default")))
#else
#define SHMBUS_EXPORT
#endif
