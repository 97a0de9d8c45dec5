// goldylox — version macros and the versioned inline namespace.
#pragma once

#define GOLDYLOX_VERSION_MAJOR 0
#define GOLDYLOX_VERSION_MINOR 1
#define GOLDYLOX_VERSION_PATCH 0
#define GOLDYLOX_VERSION \
  (GOLDYLOX_VERSION_MAJOR * 10000 + GOLDYLOX_VERSION_MINOR * 100 + GOLDYLOX_VERSION_PATCH)

// Everything lives in goldylox::v0 (an inline namespace), so two incompatible versions linked
// into one program produce distinct symbols instead of silent ODR violations.
#define GOLDYLOX_BEGIN_NAMESPACE \
  namespace goldylox {           \
  inline namespace v0 {
#define GOLDYLOX_END_NAMESPACE \
  }                            \
  }
