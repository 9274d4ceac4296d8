// vtpm-bench-floor: the least a TPM server can do on this machine, to
// measure what no server can go below. It takes the command line vtpm-bench
// gives a server (`socket --server type=tcp,port=P --ctrl type=tcp,port=Q
// ...`; everything but the two ports is ignored), is linked against libtpms
// (and through it libcrypto) like every libtpms-based server, and answers
// TPM2_GetRandom(n) with n zero bytes in one read and one write per command
// (the data connection has a thread that blocks in read(); another holds the
// control channel), without starting a TPM: no state is read, nothing is
// written, nothing is computed. Over the bench's TCP connections, fewer
// system calls per command than two (read, write) need busy-polling, which
// the targets exclude, or io_uring, whose operations a seccomp filter cannot
// inspect. (Over a unix socket a reader blocked in read() is woken again each
// time the peer reads what it was sent, so there this design is not the
// cheapest.) It is a measuring instrument, never a TPM: its "random" bytes
// are zeros, and every other command gets TPM_RC_COMMAND_CODE.
//
// vtpm-bench runs it beside swtpm for two rows: the cold start (exec to
// the first answer: the kernel's exec and the loader's work on libtpms and
// libcrypto) and the GetRandom round trip (the kernel's wake-ups and
// loopback TCP). The ratio floor/swtpm is the lowest ratio any server can
// reach here.
#include <libtpms/tpm_library.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <thread>

#include "util/fd.hpp"

namespace {

constexpr uint32_t kCcGetRandom = 0x17b;
constexpr uint32_t kRcCommandCode = 0x143;
constexpr size_t kHeader = 10;
constexpr size_t kMaxRandom = 64;  // a TPM's usual limit per GetRandom

// The number after "port=" in a `type=tcp,port=N` value; 0 if absent.
int port_of(std::string_view value) {
    const auto at = value.find("port=");
    if (at == std::string_view::npos) return 0;
    return std::atoi(value.substr(at + 5).data());
}

vtpm::UniqueFd listen_loopback(int port) {
    vtpm::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return fd;
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd.get(), 4) != 0)
        return vtpm::UniqueFd();
    return fd;
}

void put_be(uint8_t* p, uint32_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i, v >>= 8) p[i] = static_cast<uint8_t>(v);
}

uint32_t get_be(const uint8_t* p, int bytes) {
    uint32_t v = 0;
    for (int i = 0; i < bytes; ++i) v = v << 8 | p[i];
    return v;
}

// The response to one complete command in `cmd`; returns its length.
size_t answer(const uint8_t* cmd, size_t len, uint8_t* rsp) {
    const uint32_t code = get_be(cmd + 6, 4);
    size_t want = 0;
    uint32_t rc = kRcCommandCode;
    if (code == kCcGetRandom && len >= kHeader + 2) {
        want = get_be(cmd + kHeader, 2);
        if (want > kMaxRandom) want = kMaxRandom;
        rc = 0;
    }
    const size_t size = kHeader + (rc == 0 ? 2 + want : 0);
    std::memset(rsp, 0, size);
    put_be(rsp, 0x8001, 2);  // TPM_ST_NO_SESSIONS
    put_be(rsp + 2, static_cast<uint32_t>(size), 4);
    put_be(rsp + 6, rc, 4);
    if (rc == 0) put_be(rsp + kHeader, static_cast<uint32_t>(want), 2);
    return size;
}

}  // namespace

int main(int argc, char** argv) {
    int data_port = 0, ctrl_port = 0;
    for (int i = 1; i + 1 < argc; ++i) {
        const std::string_view opt = argv[i];
        if (opt == "--server") data_port = port_of(argv[i + 1]);
        if (opt == "--ctrl") ctrl_port = port_of(argv[i + 1]);
    }
    if (data_port <= 0 || ctrl_port <= 0) {
        std::fprintf(stderr, "vtpm-bench-floor: needs --server type=tcp,port=N and --ctrl type=tcp,port=M\n");
        return 2;
    }
    // The one libtpms call: the library is loaded as in any server built on it.
    std::fprintf(stderr, "vtpm-bench-floor: libtpms %08x loaded, no TPM started\n", TPMLIB_GetVersion());

    vtpm::UniqueFd data_listen = listen_loopback(data_port), ctrl_listen = listen_loopback(ctrl_port);
    if (!data_listen || !ctrl_listen) {
        std::fprintf(stderr, "vtpm-bench-floor: cannot listen on 127.0.0.1:%d/%d: %s\n", data_port, ctrl_port,
                     std::strerror(errno));
        return 1;
    }
    // The control channel: accepted and drained, one client at a time.
    std::thread ctrl_thread([fd = ctrl_listen.get()] {
        for (;;) {
            vtpm::UniqueFd ctrl(::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC));
            if (!ctrl) continue;
            uint8_t sink[256];
            while (::read(ctrl.get(), sink, sizeof sink) > 0) {
            }
        }
    });
    ctrl_thread.detach();  // the process ends by signal; nothing to clean up

    std::array<uint8_t, 4096> cmd{};
    std::array<uint8_t, kHeader + 2 + kMaxRandom> rsp{};
    for (;;) {
        vtpm::UniqueFd data(::accept4(data_listen.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!data) continue;
        size_t have = 0;
        for (;;) {
            const ssize_t n = ::read(data.get(), cmd.data() + have, cmd.size() - have);
            if (n <= 0) break;
            have += static_cast<size_t>(n);
            if (have < kHeader) continue;
            const size_t size = get_be(cmd.data() + 2, 4);
            if (size < kHeader || size > cmd.size()) break;  // not a TPM command: drop the connection
            if (have < size) continue;
            const size_t len = answer(cmd.data(), size, rsp.data());
            if (::write(data.get(), rsp.data(), len) != static_cast<ssize_t>(len)) break;
            have = 0;  // one command at a time, as the bench sends them
        }
    }
}
