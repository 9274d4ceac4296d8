// Result type used across libvtpm: a value or an Error carrying a swtpm/TPM
// result code and a human-readable message. The library never throws across
// its API; executables turn errors into exit codes or control responses.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace vtpm {

/// TPM 1.2 style result codes used on swtpm's control channel (also in TPM 2 mode).
namespace rc {
inline constexpr uint32_t kSuccess = 0x00;
inline constexpr uint32_t kBadParameter = 0x03;
inline constexpr uint32_t kFail = 0x09;
inline constexpr uint32_t kBadOrdinal = 0x0a;
inline constexpr uint32_t kKeyNotFound = 0x0d;
inline constexpr uint32_t kSize = 0x17;
inline constexpr uint32_t kBadParamSize = 0x19;
inline constexpr uint32_t kIoError = 0x1f;
inline constexpr uint32_t kEncryptError = 0x20;
inline constexpr uint32_t kDecryptError = 0x21;
inline constexpr uint32_t kInvalidPostInit = 0x26;
inline constexpr uint32_t kBadKeyProperty = 0x28;
inline constexpr uint32_t kBadDataSize = 0x2b;
inline constexpr uint32_t kBadMode = 0x2c;
inline constexpr uint32_t kBadVersion = 0x2e;
inline constexpr uint32_t kBadLocality = 0x3d;
/// Non-fatal: the requested state blob does not exist.
inline constexpr uint32_t kRetry = 0x800;
}  // namespace rc

/// An error: a result code (see vtpm::rc) and a message saying what was wrong.
struct Error {
    uint32_t code = rc::kFail;
    std::string message;
};

/// Either a T or an Error. Minimal stand-in for C++23 std::expected.
template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Result(Error err) : v_(std::in_place_index<1>, std::move(err)) {}

    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &std::get<0>(v_); }
    const T* operator->() const { return &std::get<0>(v_); }
    T& operator*() & { return std::get<0>(v_); }
    const T& operator*() const& { return std::get<0>(v_); }

    const Error& error() const { return std::get<1>(v_); }
    uint32_t code() const { return ok() ? rc::kSuccess : error().code; }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error err) : err_(std::move(err)), failed_(true) {}

    bool ok() const noexcept { return !failed_; }
    explicit operator bool() const noexcept { return ok(); }
    const Error& error() const { return err_; }
    uint32_t code() const { return ok() ? rc::kSuccess : err_.code; }

private:
    Error err_{};
    bool failed_ = false;
};

/// Shorthand for building an Error.
inline Error make_error(uint32_t code, std::string message) {
    return Error{code, std::move(message)};
}

}  // namespace vtpm
