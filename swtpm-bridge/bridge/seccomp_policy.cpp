#include "bridge/seccomp_policy.hpp"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <memory>
#include <string>

#include "util/log.hpp"

namespace vtpm::bridge {
namespace {

// Argument 0 equal to `v` (libseccomp's SCMP_A0 leaves a field to the
// compiler, which clang's -Wmissing-field-initializers reports).
scmp_arg_cmp arg0_equals(scmp_datum_t v) { return scmp_arg_cmp{0, SCMP_CMP_EQ, v, 0}; }

// Allowed with any arguments, grouped by what needs them after the filter is
// installed (main.cpp: right before Server::run).
constexpr int kAllowed[] = {
    // sockets: the control and data channels (unix and TCP), fds passed with
    // SCM_RIGHTS, SO_PEERCRED, the client of vtpm-hostd
    SCMP_SYS(accept), SCMP_SYS(accept4), SCMP_SYS(connect), SCMP_SYS(recvfrom), SCMP_SYS(recvmsg),
    SCMP_SYS(sendto), SCMP_SYS(sendmsg), SCMP_SYS(getsockopt), SCMP_SYS(setsockopt), SCMP_SYS(getsockname),
    SCMP_SYS(getpeername), SCMP_SYS(shutdown),
    // waiting: the event loop, the vtpm-hostd client
    SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(select), SCMP_SYS(pselect6), SCMP_SYS(epoll_create1),
    SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_pwait2),
    // descriptors
    SCMP_SYS(close), SCMP_SYS(dup), SCMP_SYS(dup2), SCMP_SYS(dup3), SCMP_SYS(pipe2), SCMP_SYS(eventfd2),
    SCMP_SYS(timerfd_create), SCMP_SYS(timerfd_settime), SCMP_SYS(timerfd_gettime), SCMP_SYS(fcntl),
    SCMP_SYS(flock),
    // files: the state directory or file:// image (temp file, fsync, rename,
    // fsync of the folder), /proc/<pid>/maps and mem or memory-backend files
    // of the guest (snapshot guard)
    SCMP_SYS(openat), SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(pread64),
    SCMP_SYS(pwrite64), SCMP_SYS(preadv), SCMP_SYS(pwritev), SCMP_SYS(lseek), SCMP_SYS(fsync),
    SCMP_SYS(fdatasync), SCMP_SYS(ftruncate), SCMP_SYS(fallocate), SCMP_SYS(fstat), SCMP_SYS(newfstatat),
    SCMP_SYS(statx), SCMP_SYS(getdents64), SCMP_SYS(rename), SCMP_SYS(renameat), SCMP_SYS(renameat2),
    SCMP_SYS(linkat), SCMP_SYS(unlink), SCMP_SYS(unlinkat), SCMP_SYS(readlink), SCMP_SYS(readlinkat),
    SCMP_SYS(access), SCMP_SYS(faccessat), SCMP_SYS(faccessat2), SCMP_SYS(umask), SCMP_SYS(fchmod),
    // memory
    SCMP_SYS(brk), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(mprotect), SCMP_SYS(madvise),
    SCMP_SYS(mlock), SCMP_SYS(mlock2), SCMP_SYS(munlock),
    // threads (the page hasher; clone is below) and their synchronisation
    SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(sched_getaffinity),
    SCMP_SYS(sched_yield), SCMP_SYS(exit), SCMP_SYS(exit_group),
    // signals (SIGTERM via signalfd, abort via tgkill); restart_syscall after
    // a stop and continue (e.g. a debugger attaching)
    SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(sigaltstack),
    SCMP_SYS(signalfd4), SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(tgkill), SCMP_SYS(restart_syscall),
    // time, randomness, identity
    SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday), SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep), SCMP_SYS(getrandom), SCMP_SYS(uname), SCMP_SYS(sysinfo), SCMP_SYS(getuid),
    SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
};

// prctl options the bridge or its libraries use; not PR_SET_DUMPABLE (it
// would undo harden_process) nor PR_SET_PTRACER.
constexpr int kPrctlAllowed[] = {PR_GET_DUMPABLE, PR_SET_NAME, PR_GET_NAME};

struct CtxRelease {
    void operator()(scmp_filter_ctx c) const noexcept { seccomp_release(c); }
};

Result<void> rule_failed(const char* what, int r) {
    return make_error(rc::kFail, std::string("seccomp rule for ") + what + " failed: " + std::to_string(-r));
}

}  // namespace

Result<void> load_seccomp_filter(std::string_view action) {
    uint32_t act = SCMP_ACT_KILL_PROCESS;
    if (action == "log") act = SCMP_ACT_LOG;
    else if (action != "kill")
        return make_error(rc::kBadParameter, "unknown seccomp action '" + std::string(action) + "'");
    std::unique_ptr<void, CtxRelease> ctx(seccomp_init(act));
    if (!ctx) return make_error(rc::kFail, "seccomp_init failed");
    scmp_filter_ctx c = ctx.get();
    for (int sc : kAllowed) {
        if (sc < 0) continue;  // not on this architecture
        if (int r = seccomp_rule_add(c, SCMP_ACT_ALLOW, sc, 0); r < 0)
            return make_error(rc::kFail, "seccomp rule for syscall " + std::to_string(sc) + " failed: " +
                                             std::to_string(-r));
    }
    // Threads only: clone without CLONE_THREAD (a new process) gets the
    // default action. clone3 cannot be inspected (its flags are in memory),
    // so it fails with ENOSYS and the C library falls back to clone.
    if (int r = seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                 scmp_arg_cmp{0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD});
        r < 0)
        return rule_failed("clone", r);
    if (int r = seccomp_rule_add(c, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0); r < 0)
        return rule_failed("clone3", r);
    // New sockets: unix ones only (the client of vtpm-hostd). The listening
    // sockets, TCP ones included, exist before the filter; every other
    // family (inet, raw, packet, netlink) gets the default action.
    if (int r = seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, arg0_equals(AF_UNIX)); r < 0)
        return rule_failed("socket", r);
    for (int option : kPrctlAllowed) {
        if (int r = seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                                     arg0_equals(static_cast<scmp_datum_t>(option)));
            r < 0)
            return rule_failed("prctl", r);
    }
    if (int r = seccomp_load(c); r < 0)
        return make_error(rc::kFail, "loading the seccomp filter failed: " + std::to_string(-r));
    return {};
}

Result<void> install_seccomp(std::string_view action) {
    if (action == "none") return {};
#if defined(__SANITIZE_ADDRESS__)
    // LeakSanitizer stops the world with clone + ptrace at exit.
    VTPM_LOG_WARN("seccomp filter not installed in a sanitizer build");
    return {};
#else
    if (auto r = load_seccomp_filter(action); !r) return r;
    VTPM_LOG_INFO("seccomp filter installed (action %.*s)", static_cast<int>(action.size()), action.data());
    return {};
#endif
}

}  // namespace vtpm::bridge
