/* Declarations shared by scan.c and scan_simd.c; not part of the public header. */
#ifndef CSIPSCAN_INTERNAL_H
#define CSIPSCAN_INTERNAL_H

#include "include/CSIPScan.h"

size_t csip_find_control_scalar(const uint8_t *buf, size_t from, size_t to);
size_t csip_find_control_sse42(const uint8_t *buf, size_t from, size_t to);
size_t csip_find_control_avx2(const uint8_t *buf, size_t from, size_t to);
/** 1 when this CPU can run the given CSIP_SIMD_* level. */
int csip_cpu_supports(uint32_t level);

#endif
