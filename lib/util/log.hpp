// Process-wide logging with swtpm's `--log level=N` semantics: level 0 logs
// nothing, 1 errors (the default when a log target is given), higher levels
// add detail. One line per event; callers must never pass secrets.
#pragma once

#include <cstdarg>
#include <string>

namespace vtpm::log {

enum Level : unsigned { kError = 1, kWarn = 2, kInfo = 3, kDebug = 4 };

/// Where log lines go and which ones. Not thread-safe to change while logging.
struct Config {
    int fd = 2;               // -1: logging off
    unsigned level = kError;  // lines with a level above this are dropped
    std::string prefix;       // prepended to every line
};

/// Replace the logging configuration (takes ownership of cfg.fd if owned=true).
void configure(Config cfg, bool owned);
/// Current level.
unsigned level();
/// The fd log lines are written to, or -1.
int fd();

/// Write one line at `lvl` (a trailing newline is added if missing).
void write(unsigned lvl, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void vwrite(unsigned lvl, const char* fmt, va_list ap);

}  // namespace vtpm::log

#define VTPM_LOG_ERROR(...) ::vtpm::log::write(::vtpm::log::kError, __VA_ARGS__)
#define VTPM_LOG_WARN(...) ::vtpm::log::write(::vtpm::log::kWarn, __VA_ARGS__)
#define VTPM_LOG_INFO(...) ::vtpm::log::write(::vtpm::log::kInfo, __VA_ARGS__)
#define VTPM_LOG_DEBUG(...) ::vtpm::log::write(::vtpm::log::kDebug, __VA_ARGS__)
