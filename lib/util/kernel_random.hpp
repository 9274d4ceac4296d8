// OpenSSL's random numbers straight from the kernel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "vtpm/result.hpp"

namespace vtpm {

/// Fills `out` from getrandom(2), blocking only until the kernel's pool is
/// initialised (once per boot). Fails only if the kernel refuses.
Result<void> kernel_random(std::span<uint8_t> out);

/// Makes RAND_bytes and RAND_priv_bytes in this process (libtpms' entropy,
/// OpenSSL's nonces and key generation, ours) draw from getrandom(2) instead
/// of OpenSSL's DRBG chain, which is seeded from the same source: setting that
/// chain up (configuration, provider store, an AES-CTR DRBG per thread) is
/// about 8 M instructions, 60 % of a bridge's start, for the few bytes libtpms
/// asks for at TPM2_Startup. For programs only, never from the library: it
/// changes the whole process. Call before any other use of OpenSSL.
Result<void> use_kernel_random_for_openssl();

}  // namespace vtpm
