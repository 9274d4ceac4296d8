#include "util/sha256.hpp"

#include <openssl/evp.h>

#include <memory>

namespace vtpm {

Digest sha256(std::initializer_list<ByteView> parts) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    Digest d{};
    unsigned int n = 0;
    EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
    for (ByteView p : parts) EVP_DigestUpdate(ctx.get(), p.data(), p.size());
    EVP_DigestFinal_ex(ctx.get(), d.data(), &n);
    return d;
}

}  // namespace vtpm
