// Key material for --key / --migration-key (state-format.md §2.5).
#include "store/key.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "util/fd.hpp"
#include "util/subopts.hpp"

namespace vtpm::store {
namespace {

constexpr size_t kMaxKeyRead = 67;  // "0x" + 64 hex digits + a newline

// Read up to `max` bytes (0 = until EOF) from fd straight into protected
// memory: no stack or heap copy of the key material is left behind.
Result<ProtectedBytes> read_fd(int fd, size_t max) {
    ProtectedBytes out(max ? max : 4096);
    size_t len = 0;
    for (;;) {
        if (len == out.size()) {
            if (max) break;
            out.resize(out.size() * 2);
        }
        ssize_t n = ::read(fd, out.data() + len, out.size() - len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return make_error(rc::kFail, std::string("could not read key material: ") + std::strerror(errno));
        }
        if (n == 0) break;
        len += static_cast<size_t>(n);
    }
    out.resize(len);
    return out;
}

int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

Result<Key> parse_hex_key(std::string_view text, size_t keylen) {
    if (text.size() >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) text.remove_prefix(2);
    size_t digits = 0;
    while (digits < text.size() && hexval(text[digits]) >= 0) ++digits;
    // As swtpm: the key ends at the first white space, whatever follows it.
    if (digits < text.size() && !std::isspace(static_cast<unsigned char>(text[digits])))
        return make_error(rc::kBadKeyProperty, "hex key contains a character that is not a hex digit");
    if (digits != 2 * keylen)
        return make_error(rc::kBadKeyProperty, "hex key has " + std::to_string(digits) + " digits, the mode needs " +
                                                   std::to_string(2 * keylen));
    Key k{ProtectedBytes(keylen)};
    for (size_t i = 0; i < keylen; ++i)
        k.bytes[i] = static_cast<uint8_t>(hexval(text[2 * i]) << 4 | hexval(text[2 * i + 1]));
    return k;
}

Result<Key> derive_key_pbkdf2(ByteView passphrase, size_t keylen) {
    static const unsigned char kSalt[] = {'s', 'w', 't', 'p', 'm'};
    Key k{ProtectedBytes(keylen)};
    if (PKCS5_PBKDF2_HMAC(reinterpret_cast<const char*>(passphrase.data()), static_cast<int>(passphrase.size()), kSalt,
                          sizeof kSalt, 1000, EVP_sha512(), static_cast<int>(keylen), k.bytes.data()) != 1)
        return make_error(rc::kFail, "PBKDF2 key derivation failed");
    return k;
}

Result<Key> derive_key_sha512(ByteView passphrase, size_t keylen) {
    if (keylen > 64) return make_error(rc::kBadKeyProperty, "SHA-512 gives at most 64 key bytes");
    ProtectedBytes digest(64);
    unsigned len = 0;
    if (EVP_Digest(passphrase.data(), passphrase.size(), digest.data(), &len, EVP_sha512(), nullptr) != 1)
        return make_error(rc::kFail, "SHA-512 key derivation failed");
    digest.resize(keylen);
    return Key{std::move(digest)};
}

namespace {
const std::vector<std::string_view> kKeyOptionNames = {"file", "fd", "pwdfile", "pwdfd", "mode", "format", "kdf", "remove"};
}  // namespace

std::optional<int> key_option_fd(std::string_view value) {
    auto so = SubOpts::parse(value, kKeyOptionNames);
    if (!so) return std::nullopt;
    for (const char* name : {"fd", "pwdfd"})
        if (auto v = so->integer(name); v && *v && **v >= 0) return static_cast<int>(**v);
    return std::nullopt;
}

Result<Key> load_key_option(std::string_view value) {
    auto so = SubOpts::parse(value, kKeyOptionNames);
    if (!so) return so.error();
    size_t keylen = 16;
    if (auto m = so->str("mode")) {
        if (*m == "aes-cbc" || *m == "aes-128-cbc") keylen = 16;
        else if (*m == "aes-256-cbc") keylen = 32;
        else return make_error(rc::kBadMode, "unknown encryption mode '" + *m + "'");
    }
    // As swtpm: file= before fd= before pwdfile= before pwdfd=.
    const bool is_pwd = !so->has("file") && !so->has("fd") && (so->has("pwdfile") || so->has("pwdfd"));
    std::optional<std::string> path = so->str(is_pwd ? "pwdfile" : "file");
    std::optional<std::string> fdtext = so->str(is_pwd ? "pwdfd" : "fd");
    if (!path && !fdtext) return make_error(rc::kBadParameter, "file=, fd=, pwdfile= or pwdfd= is required");

    UniqueFd fd;
    if (path) {
        fd.reset(::open(path->c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd) return make_error(rc::kFail, "could not open " + *path + ": " + std::strerror(errno));
    } else {
        auto n = so->integer(is_pwd ? "pwdfd" : "fd");
        if (!n) return n.error();
        if (**n < 0) return make_error(rc::kBadParameter, "invalid file descriptor " + *fdtext);
        fd.reset(static_cast<int>(**n));  // the descriptor is ours now and closed after reading
    }
    auto data = read_fd(fd.get(), is_pwd ? 0 : kMaxKeyRead);
    fd.reset();
    if (!data) return data.error();

    auto key = [&]() -> Result<Key> {
        if (is_pwd) {
            std::string kdf = so->str("kdf").value_or("pbkdf2");
            if (kdf == "pbkdf2") return derive_key_pbkdf2(*data, keylen);
            if (kdf == "sha512") return derive_key_sha512(*data, keylen);
            return make_error(rc::kBadParameter, "unknown kdf '" + kdf + "'");
        }
        std::string format = so->str("format").value_or("hex");
        if (format == "hex")
            return parse_hex_key(std::string_view(reinterpret_cast<const char*>(data->data()), data->size()), keylen);
        if (format == "binary") {
            if (data->size() != keylen)
                return make_error(rc::kBadKeyProperty, "binary key has " + std::to_string(data->size()) +
                                                           " bytes, the mode needs " + std::to_string(keylen));
            return Key{std::move(*data)};
        }
        return make_error(rc::kBadParameter, "unknown key format '" + format + "'");
    }();
    // remove: as swtpm, only once the key is loaded, and every file named.
    if (key && so->flag("remove"))
        for (const char* name : {"file", "pwdfile"})
            if (auto p = so->str(name)) ::unlink(p->c_str());
    return key;
}

}  // namespace vtpm::store
