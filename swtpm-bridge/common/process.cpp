#include "common/process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "util/log.hpp"
#include "util/secure_memory.hpp"

extern "C" {
#include <libtpms/tpm_library.h>
}

namespace vtpm::bridge {
namespace {
std::string errstr() { return std::strerror(errno); }
int g_ready_fd = -1;
}  // namespace

namespace {
// swtpm passes level - 4 on to libtpms' own debug output from level 5 on.
void libtpms_debug(unsigned level, int fd, const std::string& prefix) {
    if (level < 5 || fd < 0) return;
    TPMLIB_SetDebugFD(fd);
    TPMLIB_SetDebugLevel(level - 4);
    if (!prefix.empty()) TPMLIB_SetDebugPrefix(prefix.c_str());
}
}  // namespace

Result<void> setup_logging(const std::optional<LogOpts>& log) {
    if (!log) {
        log::configure({2, log::kError, ""}, false);
        return {};
    }
    unsigned level = log->level.value_or(log::kError);
    if (log->file == "-") {
        log::configure({-1, 0, ""}, false);
        return {};
    }
    if (!log->file.empty()) {
        int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (log->truncate ? O_TRUNC : O_APPEND);
        int fd = ::open(log->file.c_str(), flags, 0600);
        if (fd < 0) return make_error(rc::kFail, "could not open log file " + log->file + ": " + errstr());
        log::configure({fd, level, log->prefix}, true);
        libtpms_debug(level, fd, log->prefix);
        return {};
    }
    if (log->fd >= 0) {
        // As swtpm: the descriptor must be open for writing.
        const int fl = ::fcntl(log->fd, F_GETFL);
        if (fl == -1 || (fl & O_ACCMODE) == O_RDONLY)
            return make_error(rc::kFail, "could not write the log to fd " + std::to_string(log->fd) + ": " +
                                             (fl == -1 ? errstr() : std::string(std::strerror(EPERM))));
        log::configure({log->fd, level, log->prefix}, true);
        libtpms_debug(level, log->fd, log->prefix);
        return {};
    }
    log::configure({2, level, log->prefix}, false);
    libtpms_debug(level, 2, log->prefix);
    return {};
}

Result<void> switch_user(const std::string& who) {
    uid_t uid = 0;
    gid_t gid = 0;
    unsigned long n = 0;
    auto [p, ec] = std::from_chars(who.data(), who.data() + who.size(), n, 10);
    if (ec == std::errc{} && p == who.data() + who.size()) {
        uid = static_cast<uid_t>(n);
        gid = static_cast<gid_t>(n);
        if (::setgroups(0, nullptr) < 0 && errno != EPERM)
            return make_error(rc::kFail, "setgroups failed: " + errstr());
    } else {
        const passwd* pw = ::getpwnam(who.c_str());
        if (!pw) return make_error(rc::kFail, "--runas: unknown user '" + who + "'");
        uid = pw->pw_uid;
        gid = pw->pw_gid;
        if (::initgroups(pw->pw_name, gid) < 0)
            return make_error(rc::kFail, "--runas: initgroups failed: " + errstr());
    }
    if (::setgid(gid) < 0) return make_error(rc::kFail, "--runas: setgid failed: " + errstr());
    if (::setuid(uid) < 0) return make_error(rc::kFail, "--runas: setuid failed: " + errstr());
    return {};
}

Result<void> harden_process() {
    const struct rlimit none{0, 0};
    if (::setrlimit(RLIMIT_CORE, &none) != 0)
        return make_error(rc::kFail, std::string("could not disable core dumps: ") + std::strerror(errno));
#if !defined(__SANITIZE_ADDRESS__)
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return make_error(rc::kFail, std::string("could not make the process non-dumpable: ") + std::strerror(errno));
#endif
    return {};
}

Result<void> daemonize() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) return make_error(rc::kFail, "pipe: " + errstr());
    pid_t pid = ::fork();
    if (pid < 0) return make_error(rc::kFail, "fork: " + errstr());
    if (pid > 0) {
        ::close(p[1]);
        char c = 0;
        ssize_t n;
        do { n = ::read(p[0], &c, 1); } while (n < 0 && errno == EINTR);
        ::_exit(n == 1 ? 0 : 1);
    }
    ::close(p[0]);
    g_ready_fd = p[1];
    relock_protected_memory();  // the keys were loaded before the fork, whose child inherits no locks
    ::setsid();
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
        ::dup2(null, 0);
        ::dup2(null, 1);
        if (log::fd() != 2) ::dup2(null, 2);
        if (null > 2) ::close(null);
    }
    return {};
}

void daemon_ready() {
    if (g_ready_fd < 0) return;
    char c = 1;
    ssize_t n = ::write(g_ready_fd, &c, 1);
    (void)n;
    ::close(g_ready_fd);
    g_ready_fd = -1;
}

Result<PidFile> PidFile::write(const std::optional<std::string>& path, int fd) {
    PidFile pf;
    std::string text = std::to_string(::getpid());
    if (path) {
        // In place, as swtpm: swtpm_setup made this file and watches its own
        // open descriptor of it, so a new file renamed over it goes unseen.
        // The pid is one short write.
        UniqueFd f(::open(path->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
        if (!f) return make_error(rc::kFail, "could not open pid file " + *path + ": " + errstr());
        if (::write(f.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
            return make_error(rc::kFail, "could not write pid file " + *path + ": " + errstr());
        pf.path_ = *path;
    } else if (fd >= 0) {
        struct stat st{};
        if (::fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
            return make_error(rc::kFail, "--pid fd=" + std::to_string(fd) + " is not a regular file");
        if (::ftruncate(fd, 0) < 0 || ::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
            return make_error(rc::kFail, "could not write the pid to fd " + std::to_string(fd) + ": " + errstr());
        char link[64];
        std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        char target[4096];
        ssize_t n = ::readlink(link, target, sizeof target - 1);
        if (n > 0) pf.path_.assign(target, static_cast<size_t>(n));
        ::close(fd);
    }
    return pf;
}

PidFile::PidFile(PidFile&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
PidFile& PidFile::operator=(PidFile&& o) noexcept {
    if (this != &o) {
        if (!path_.empty()) ::unlink(path_.c_str());
        path_ = std::move(o.path_);
        o.path_.clear();
    }
    return *this;
}
PidFile::~PidFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
}

}  // namespace vtpm::bridge
