// SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, but
// EVP's first use loads OpenSSL's configuration and providers (≈ 2 ms at
// every bridge start, for digests of a few KiB), and its per-call dispatch
// costs more than the digest of small messages. libtpms uses this interface too.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "util/sha256.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace vtpm {

Digest sha256(std::initializer_list<ByteView> parts) {
    SHA256_CTX ctx;
    Digest d{};
    SHA256_Init(&ctx);
    for (ByteView p : parts) SHA256_Update(&ctx, p.data(), p.size());
    SHA256_Final(d.data(), &ctx);
    OPENSSL_cleanse(&ctx, sizeof ctx);
    return d;
}

}  // namespace vtpm
