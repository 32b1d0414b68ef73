/* SPDX-License-Identifier: MIT */
#include <stdlib.h>

#include "util.h"

char *conduit__strdup_null(const char *s, bool *ok)
{
        if (!s)
                return NULL;
        char *d = strdup(s);
        if (!d)
                *ok = false;
        return d;
}

static int digit_value(char c, unsigned base)
{
        int v;
        if (c >= '0' && c <= '9')
                v = c - '0';
        else if (c >= 'a' && c <= 'f')
                v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
                v = c - 'A' + 10;
        else
                return -1;
        return (unsigned)v < base ? v : -1;
}

bool conduit__parse_uint(const char *s, size_t len, uint64_t max, uint64_t *ret)
{
        unsigned base = 10;
        if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
                base = 16;
                s += 2;
                len -= 2;
        }
        if (len == 0)
                return false;
        uint64_t v = 0;
        for (size_t i = 0; i < len; i++) {
                int d = digit_value(s[i], base);
                if (d < 0)
                        return false;
                if (v > (max - (uint64_t)d) / base)
                        return false;
                v = v * base + (uint64_t)d;
        }
        *ret = v;
        return true;
}

void conduit__ascii_lower(char *s)
{
        for (; s && *s; s++)
                if (*s >= 'A' && *s <= 'Z')
                        *s = (char)(*s - 'A' + 'a');
}
