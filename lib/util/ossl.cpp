#include "util/ossl.hpp"

#include <openssl/err.h>

namespace vtpm {

std::string ossl_error(const std::string& what) {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return what;
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    return what + ": " + buf;
}

}  // namespace vtpm
