#pragma once
#  include "goldylox/detail/common/platform.hpp"
