#pragma once
#include <goldylox/detail/hot/table.hpp>
