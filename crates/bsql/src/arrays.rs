//! Array functions whose PostgreSQL meaning differs from DataFusion's function of the same
//! name, registered in its place: `array_length(a, dim)` is NULL for an empty array or a
//! dimension the array lacks (DataFusion answers 0), and an `integer`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int32Array};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// PostgreSQL's `array_length` of one-dimensional arrays.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrayLength {
    signature: Signature,
}

impl ScalarUDFImpl for ArrayLength {
    fn name(&self) -> &str {
        "array_length"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let [list, dim] = args.args.as_slice() else {
            return Err(DataFusionError::Plan(
                "function array_length takes an array and a dimension".into(),
            ));
        };
        let list = list.to_array(n)?;
        let dim = datafusion::arrow::compute::cast(&dim.to_array(n)?, &DataType::Int64)?;
        let dim = dim.as_primitive::<Int64Type>();
        let len = |i: usize| -> Option<i32> {
            if list.is_null(i) || dim.is_null(i) || dim.value(i) != 1 {
                return None;
            }
            let l = match list.data_type() {
                DataType::List(_) => list.as_list::<i32>().value_length(i) as usize,
                DataType::LargeList(_) => list.as_list::<i64>().value_length(i) as usize,
                _ => return None,
            };
            (l > 0).then_some(l as i32)
        };
        let out: Int32Array = (0..n).map(len).collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// Register the functions of this module (replacing DataFusion's of the same names).
pub fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(ArrayLength {
        signature: Signature::any(2, Volatility::Immutable),
    }));
}
