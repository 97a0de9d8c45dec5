#pragma once
#include "goldylox/detail/warm/y.hpp"
