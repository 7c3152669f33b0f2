#include <sys/prctl.h>
#include <string.h>

/// Makes this process non-dumpable: other processes of the same user (a trainer) can no
/// longer read its /proc/<pid>/environ, /proc/<pid>/mem or /proc/<pid>/fd, nor ptrace it.
static inline int cairn_set_nondumpable(void) { return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); }

/// 1 when this process is dumpable, 0 when not.
static inline int cairn_is_dumpable(void) { return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0); }
