"""Regional point-method payment (区域点数法总额预算): routing, points, budget, settlement, audit."""
