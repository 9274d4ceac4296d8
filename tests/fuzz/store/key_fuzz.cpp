// Fuzz the key material swtpm's --key/--migration-key read: arbitrary bytes
// as a key file (binary or hex) or a passphrase file, through a memfd (never
// a file on disk, never remove=), and as hex key text.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <string_view>

#include "store/key.hpp"
#include "util/fd.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    for (size_t len : {16u, 32u}) {
        auto k = vtpm::store::parse_hex_key(text, len);
        if (k && k->bytes.size() != len) std::abort();
    }
    vtpm::UniqueFd fd(::memfd_create("key-fuzz", MFD_CLOEXEC));
    if (!fd) std::abort();
    if (size && ::write(fd.get(), data, size) != static_cast<ssize_t>(size)) std::abort();
    const std::string path = "/proc/self/fd/" + std::to_string(fd.get());
    for (const char* opts : {"file=%s", "file=%s,format=hex", "file=%s,mode=aes-256-cbc", "pwdfile=%s",
                             "pwdfile=%s,kdf=sha512", "pwdfile=%s,kdf=pbkdf2,mode=aes-256-cbc"}) {
        std::string o(opts);
        o.replace(o.find("%s"), 2, path);
        ::lseek(fd.get(), 0, SEEK_SET);
        (void)vtpm::store::load_key_option(o);
    }
    return 0;
}
