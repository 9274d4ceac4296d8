#include "util/log.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace vtpm::log {
namespace {
Config g_cfg;
bool g_owned = false;
}  // namespace

void configure(Config cfg, bool owned) {
    if (g_owned && g_cfg.fd >= 0 && g_cfg.fd != cfg.fd) ::close(g_cfg.fd);
    g_cfg = std::move(cfg);
    g_owned = owned;
}

unsigned level() { return g_cfg.fd < 0 ? 0 : g_cfg.level; }
int fd() { return g_cfg.fd; }

void vwrite(unsigned lvl, const char* fmt, va_list ap) {
    if (g_cfg.fd < 0 || lvl > g_cfg.level) return;
    char buf[1024];
    int n = 0;
    if (!g_cfg.prefix.empty())
        n = std::snprintf(buf, sizeof buf, "%s", g_cfg.prefix.c_str());
    if (n < 0 || static_cast<size_t>(n) >= sizeof buf) n = 0;
    int m = std::vsnprintf(buf + n, sizeof buf - n, fmt, ap);
    if (m < 0) return;
    size_t len = std::min(sizeof buf - 2, static_cast<size_t>(n) + static_cast<size_t>(m));
    if (len == 0 || buf[len - 1] != '\n') buf[len++] = '\n';
    // One write per line so concurrent writers (libtpms debug) do not interleave mid-line.
    ssize_t w = ::write(g_cfg.fd, buf, len);
    (void)w;
}

void write(unsigned lvl, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vwrite(lvl, fmt, ap);
    va_end(ap);
}

}  // namespace vtpm::log
