// Object identifiers of the TCG credential profiles (EK Credential Profile
// for TPM 2.0, Platform Certificate Profile), in one place.
#pragma once

namespace vtpm::x509::oid {

inline constexpr const char* kTpmManufacturer = "2.23.133.2.1";
inline constexpr const char* kTpmModel = "2.23.133.2.2";
inline constexpr const char* kTpmVersion = "2.23.133.2.3";
inline constexpr const char* kTpmSpecification = "2.23.133.2.16";
inline constexpr const char* kPlatformManufacturer = "2.23.133.5.1.1";
inline constexpr const char* kPlatformModel = "2.23.133.5.1.4";
inline constexpr const char* kPlatformVersion = "2.23.133.5.1.5";
/// Extended key usages: tcg-kp-EKCertificate, tcg-kp-PlatformCertificate.
inline constexpr const char* kEkCertificate = "2.23.133.8.1";
inline constexpr const char* kPlatformCertificate = "2.23.133.8.2";
/// X.509 subjectDirectoryAttributes.
inline constexpr const char* kSubjectDirectoryAttributes = "2.5.29.9";

}  // namespace vtpm::x509::oid
