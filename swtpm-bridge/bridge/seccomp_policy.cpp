#include "bridge/seccomp_policy.hpp"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>

#include <memory>
#include <string>

#include "util/log.hpp"

namespace vtpm::bridge {
namespace {

// Calls denied outright, by what they would let an attacker who took over the
// process do. The bridge uses none of them after start-up.
constexpr int kDenied[] = {
    // run other programs
    SCMP_SYS(execve), SCMP_SYS(execveat),
    // inspect or control other processes
    SCMP_SYS(ptrace), SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev), SCMP_SYS(kcmp),
    SCMP_SYS(pidfd_getfd),
    // change identity or privileges (--runas is done before the filter)
    SCMP_SYS(setuid), SCMP_SYS(setgid), SCMP_SYS(setreuid), SCMP_SYS(setregid), SCMP_SYS(setresuid),
    SCMP_SYS(setresgid), SCMP_SYS(setgroups), SCMP_SYS(setfsuid), SCMP_SYS(setfsgid), SCMP_SYS(capset),
    // namespaces and the file system tree
    SCMP_SYS(unshare), SCMP_SYS(setns), SCMP_SYS(mount), SCMP_SYS(umount2), SCMP_SYS(pivot_root),
    SCMP_SYS(chroot), SCMP_SYS(open_by_handle_at), SCMP_SYS(name_to_handle_at),
    // administer the machine
    SCMP_SYS(reboot), SCMP_SYS(kexec_load), SCMP_SYS(kexec_file_load), SCMP_SYS(init_module),
    SCMP_SYS(finit_module), SCMP_SYS(delete_module), SCMP_SYS(swapon), SCMP_SYS(swapoff), SCMP_SYS(acct),
    SCMP_SYS(quotactl), SCMP_SYS(sethostname), SCMP_SYS(setdomainname), SCMP_SYS(settimeofday),
    SCMP_SYS(clock_settime), SCMP_SYS(clock_adjtime), SCMP_SYS(adjtimex), SCMP_SYS(iopl), SCMP_SYS(ioperm),
    SCMP_SYS(syslog), SCMP_SYS(vhangup),
    // kernel interfaces with a history of privilege escalation
    SCMP_SYS(bpf), SCMP_SYS(perf_event_open), SCMP_SYS(userfaultfd), SCMP_SYS(keyctl), SCMP_SYS(add_key),
    SCMP_SYS(request_key), SCMP_SYS(personality), SCMP_SYS(fanotify_init), SCMP_SYS(lookup_dcookie),
};

struct CtxRelease {
    void operator()(scmp_filter_ctx c) const noexcept { seccomp_release(c); }
};

}  // namespace

Result<void> install_seccomp(std::string_view action) {
    if (action == "none") return {};
#if defined(__SANITIZE_ADDRESS__)
    // LeakSanitizer stops the world with clone + ptrace at exit.
    VTPM_LOG_WARN("seccomp filter not installed in a sanitizer build");
    return {};
#else
    uint32_t act = SCMP_ACT_KILL_PROCESS;
    if (action == "log") act = SCMP_ACT_LOG;
    else if (action != "kill")
        return make_error(rc::kBadParameter, "unknown seccomp action '" + std::string(action) + "'");
    std::unique_ptr<void, CtxRelease> ctx(seccomp_init(SCMP_ACT_ALLOW));
    if (!ctx) return make_error(rc::kFail, "seccomp_init failed");
    for (int sc : kDenied) {
        if (sc < 0) continue;  // not on this architecture
        if (int r = seccomp_rule_add(ctx.get(), act, sc, 0); r < 0)
            return make_error(rc::kFail, "seccomp rule for syscall " + std::to_string(sc) + " failed: " +
                                             std::to_string(-r));
    }
    // New processes: clone without CLONE_THREAD; clone3 cannot be inspected,
    // so it fails with ENOSYS and the C library falls back to clone.
    if (seccomp_rule_add(ctx.get(), act, SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0)) < 0 ||
        seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) < 0)
        return make_error(rc::kFail, "seccomp rule for clone failed");
    if (int r = seccomp_load(ctx.get()); r < 0)
        return make_error(rc::kFail, "loading the seccomp filter failed: " + std::to_string(-r));
    VTPM_LOG_INFO("seccomp filter installed (action %.*s)", static_cast<int>(action.size()), action.data());
    return {};
#endif
}

}  // namespace vtpm::bridge
