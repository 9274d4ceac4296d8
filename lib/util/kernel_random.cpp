#include "util/kernel_random.hpp"

// RAND_METHOD is deprecated in OpenSSL 3 in favour of a provider; a provider
// would have to be loaded through the very machinery this avoids.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/rand.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace vtpm {

Result<void> kernel_random(std::span<uint8_t> out) {
    while (!out.empty()) {
        const ssize_t n = ::getrandom(out.data(), out.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return make_error(rc::kFail, std::string("getrandom failed: ") + std::strerror(errno));
        out = out.subspan(static_cast<size_t>(n));
    }
    return {};
}

namespace {

int rand_bytes(unsigned char* buf, int num) {
    if (num < 0) return 0;
    return kernel_random({buf, static_cast<size_t>(num)}) ? 1 : 0;
}

// The kernel's pool needs nothing mixed in; a caller's seed is accepted and
// dropped, as a DRBG fed from the kernel would gain nothing from it either.
int rand_seed(const void*, int) { return 1; }
int rand_add(const void*, int, double) { return 1; }
int rand_status() { return 1; }

const RAND_METHOD kKernelRandom = {rand_seed, rand_bytes, nullptr, rand_add, rand_bytes, rand_status};

}  // namespace

Result<void> use_kernel_random_for_openssl() {
    if (RAND_set_rand_method(&kKernelRandom) != 1)
        return make_error(rc::kFail, "cannot route OpenSSL's random numbers to getrandom(2)");
    return {};
}

}  // namespace vtpm
