/* The one version string, printed by --version and reported in logs and /metrics. */
#ifndef VB_COMMON_VERSION_H
#define VB_COMMON_VERSION_H
#define VOICEBRIDGE_VERSION "0.1.0"
#endif
