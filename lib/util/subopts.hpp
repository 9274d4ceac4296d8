// swtpm's "name=value,name,..." sub-option grammar, used by --tpmstate, --ctrl,
// --server, --key, --log, ... . Pure: no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include "vtpm/result.hpp"

namespace vtpm {

/// Parsed sub-options. As in swtpm: empty tokens are skipped, a bare `name`
/// means `name=true`, `name=` is an error, and when a name repeats the first
/// occurrence wins.
class SubOpts {
public:
    /// Parse `text`, accepting only names in `allowed`; an unknown name is an
    /// error naming the token.
    static Result<SubOpts> parse(std::string_view text,
                                 const std::vector<std::string_view>& allowed);

    bool has(std::string_view name) const;
    std::optional<std::string> str(std::string_view name) const;
    /// Boolean as swtpm reads it: "true"/"1" (case-insensitive) are true.
    bool flag(std::string_view name, bool dflt = false) const;
    /// Decimal integer; whole value must be consumed.
    Result<std::optional<long>> integer(std::string_view name) const;
    /// Octal file mode (<= 0777).
    Result<std::optional<mode_t>> mode(std::string_view name) const;
    /// uid: a number or a user name.
    Result<std::optional<uid_t>> uid(std::string_view name) const;
    /// gid: a number or a group name.
    Result<std::optional<gid_t>> gid(std::string_view name) const;

private:
    std::vector<std::pair<std::string, std::string>> kv_;
};

/// `v` as strtol starts reading a number: leading white space skipped and a
/// single '+' sign dropped, as swtpm reads its numbers ("port=+2321",
/// "fd= 5"). What remains is for std::from_chars.
std::string_view strtol_digits(std::string_view v);

}  // namespace vtpm
