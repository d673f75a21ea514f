/* coil.h: the umbrella header. Include this and link with -lcoil
 * (pkg-config --cflags --libs coil). */
#ifndef COIL_H
#define COIL_H

#define COIL_VERSION_MAJOR 0
#define COIL_VERSION_MINOR 1
#define COIL_VERSION_PATCH 0
#define COIL_VERSION_STRING "0.1.0"

#include "coil/runtime.h"
#include "coil/io.h"
#include "coil/http.h"
#include "coil/jobs.h"
#include "coil/db.h"

#endif /* COIL_H */
