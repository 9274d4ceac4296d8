// A minimal DER writer for the TCG certificate extensions OpenSSL has no
// type for (TPM manufacturer attributes, TPMSpecification). Pure: bytes in,
// bytes out.
#pragma once

#include <cstdint>
#include <string_view>

#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::x509::der {

/// Tag + length + contents.
Bytes tlv(uint8_t tag, ByteView contents);
Bytes sequence(ByteView contents);
Bytes set(ByteView contents);
Bytes utf8(std::string_view s);
Bytes integer(uint64_t v);
/// An OBJECT IDENTIFIER from dotted text ("2.23.133.2.1"); error if malformed.
Result<Bytes> oid(std::string_view dotted);

/// Concatenate encodings.
Bytes cat(std::initializer_list<ByteView> parts);

}  // namespace vtpm::x509::der
