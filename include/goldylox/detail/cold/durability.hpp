// The cold tier's durability modes. Public (goldylox::cold_durability, re-exported by config.hpp)
// but defined here, beside the store that honours them, so that the cold tier needs nothing from
// the facade's configuration header.
#pragma once

#include <cstdint>
#include <string_view>

#include "goldylox/version.hpp"

GOLDYLOX_BEGIN_NAMESPACE

// What a cold-tier write promises once it returns (docs/cold-tier.md has the exact guarantees).
enum class cold_durability : std::uint8_t { none, periodic, on_close, every_write };

constexpr std::string_view to_string(cold_durability d) noexcept {
  switch (d) {
    case cold_durability::none:
      return "none";
    case cold_durability::periodic:
      return "periodic";
    case cold_durability::on_close:
      return "on_close";
    case cold_durability::every_write:
      return "every_write";
  }
  return "unknown";
}

GOLDYLOX_END_NAMESPACE
