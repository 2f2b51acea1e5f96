#include "window.h"

const char *dmp_window_kind_name(dmp_window_kind_t kind) {
        switch (kind) {
        case DMP_WINDOW_TUMBLING: return "tumbling";
        case DMP_WINDOW_HOPPING: return "hopping";
        case DMP_WINDOW_SLIDING: return "sliding";
        case DMP_WINDOW_SESSION: return "session";
        }
        return "?";
}
