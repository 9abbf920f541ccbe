#ifndef PIPEBENCH_CNUMA_SHIM_H
#define PIPEBENCH_CNUMA_SHIM_H
#include <numa.h>
#include <numaif.h>
#endif
