#include "schemas.h"

const char dmp_schema_window_result[] =
        "{\"type\":\"record\",\"name\":\"WindowResult\",\"namespace\":\"dmpflow\",\"doc\":\"One aggregat"
        "e of one measure over one window of one key. stddev is the population standard d"
        "eviation sqrt(M2/count).\",\"fields\":[{\"name\":\"window\",\"type\":\"string\",\"doc\":\"name"
        " of the [window NAME] section\"},{\"name\":\"kind\",\"type\":\"string\",\"doc\":\"tumbling |"
        " hopping\"},{\"name\":\"key\",\"type\":\"string\"},{\"name\":\"start\",\"type\":{\"type\":\"long\","
        "\"logicalType\":\"timestamp-millis\"},\"doc\":\"inclusive\"},{\"name\":\"end\",\"type\":{\"type"
        "\":\"long\",\"logicalType\":\"timestamp-millis\"},\"doc\":\"exclusive\"},{\"name\":\"measure\","
        "\"type\":\"string\"},{\"name\":\"count\",\"type\":\"long\"},{\"name\":\"sum\",\"type\":\"double\"},{"
        "\"name\":\"min\",\"type\":\"double\"},{\"name\":\"max\",\"type\":\"double\"},{\"name\":\"mean\",\"typ"
        "e\":\"double\"},{\"name\":\"stddev\",\"type\":\"double\"}]}";
