// VM UUIDs: the canonical text form (lower-case 8-4-4-4-12) every record,
// certificate and file name uses, and the 16 raw bytes snapshot records carry.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "vtpm/result.hpp"

namespace vtpm {

using Uuid = std::array<uint8_t, 16>;

/// `text` in canonical form; the error says it is not a UUID.
Result<std::string> canonical_uuid(std::string_view text);
/// The 16 bytes of a UUID in text form (any case).
Result<Uuid> parse_uuid(std::string_view text);
/// Canonical text of 16 UUID bytes.
std::string format_uuid(const Uuid& u);

}  // namespace vtpm
