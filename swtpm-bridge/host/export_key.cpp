#include "host/export_key.hpp"

#include <fcntl.h>
#include <getopt.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "hostapi/client.hpp"
#include "util/fd.hpp"
#include "util/secure_memory.hpp"
#include "util/uuid.hpp"

namespace vtpm::host {

namespace {

int usage() {
    std::fprintf(stderr, "usage: vtpm-host export-key --vm UUID [--hostd SOCKET] [--out FILE]\n"
                         "Writes the VM's state key as hex (swtpm --key file=FILE,format=hex,mode=aes-256-cbc)\n"
                         "to FILE (created, mode 0600; never overwritten) or standard output. Root only.\n");
    return 2;
}

bool write_all(int fd, const char* p, size_t n) {
    while (n > 0) {
        const ssize_t k = ::write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        p += k;
        n -= static_cast<size_t>(k);
    }
    return true;
}

}  // namespace

int export_key_main(int argc, char** argv) {
    static const struct option longopts[] = {{"vm", required_argument, nullptr, 'v'},
                                             {"hostd", required_argument, nullptr, 's'},
                                             {"out", required_argument, nullptr, 'o'},
                                             {nullptr, 0, nullptr, 0}};
    std::string vm, socket = hostapi::kDefaultSocket, out;
    optind = 2;
    for (int c; (c = getopt_long(argc, argv, "", longopts, nullptr)) != -1;) {
        switch (c) {
            case 'v': vm = optarg; break;
            case 's': socket = optarg; break;
            case 'o': out = optarg; break;
            default: return usage();
        }
    }
    if (vm.empty() || optind != argc) return usage();
    auto fail = [](const std::string& why) {
        std::fprintf(stderr, "vtpm-host export-key: %s\n", why.c_str());
        return 1;
    };
    auto uuid = parse_uuid(vm);
    if (!uuid) return fail("--vm: '" + vm + "' is not a UUID");
    hostapi::Uuid u{};
    std::copy(uuid->begin(), uuid->end(), u.begin());
    // The file first: a key is never fetched for a destination we cannot use.
    UniqueFd fd;
    if (!out.empty()) {
        fd = UniqueFd(::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!fd) return fail("cannot create " + out + ": " + std::strerror(errno));
    }
    auto key = hostapi::Client(socket).export_state_key(u);
    if (!key) {
        if (!out.empty()) ::unlink(out.c_str());
        return fail(key.error().message);
    }
    ProtectedBytes hex(key->size() * 2 + 1);
    static const char kDigits[] = "0123456789abcdef";
    for (size_t i = 0; i < key->size(); ++i) {
        hex[2 * i] = static_cast<uint8_t>(kDigits[(*key)[i] >> 4]);
        hex[2 * i + 1] = static_cast<uint8_t>(kDigits[(*key)[i] & 0xf]);
    }
    hex[hex.size() - 1] = '\n';
    const int dst = out.empty() ? STDOUT_FILENO : fd.get();
    if (!write_all(dst, reinterpret_cast<const char*>(hex.data()), hex.size()) || (!out.empty() && ::fsync(dst) != 0)) {
        if (!out.empty()) ::unlink(out.c_str());
        return fail("cannot write the key: " + std::string(std::strerror(errno)));
    }
    if (!out.empty())
        std::fprintf(stderr, "VM %s: state key written to %s (swtpm --key file=%s,format=hex,mode=aes-256-cbc)\n",
                     format_uuid(*uuid).c_str(), out.c_str(), out.c_str());
    return 0;
}

}  // namespace vtpm::host
