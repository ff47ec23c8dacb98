// The shape a sluice dashboard's JSON must have: @grafana/schema's `Dashboard` (the classic dashboard
// model that Grafana 11/12 read and write, schemaVersion 39+), as it looks in JSON, and narrowed where
// sluice's dashboards are stricter than Grafana.
//
// Why a TypeScript copy and not `import d from '…json'`: TypeScript widens every string in an imported
// JSON module to `string`, and a `string` is assignable neither to the schema's string enums
// (`FieldColorModeId`, `ThresholdsMode`, `MappingType`, …) nor to its literal unions (`VariableType`,
// …), so a direct import either fails on every valid dashboard or has to be checked against a type
// with those fields widened away, which would let `"type": "querry"` through. tests/dashboards.rs
// therefore writes each dashboard into target/dashboards-ts as
// `export const dashboard = <the JSON, verbatim, line for line> satisfies DashboardJson;`:
// `satisfies` keeps each literal's own type, so it is checked against the enum's values and the
// unions, and, the copy being an object literal, a misspelled or unknown field is an error too
// (excess-property checking), where an imported JSON would pass it silently.
import type {
  AnnotationQuery,
  DataQuery,
  Dashboard,
  FieldConfig,
  FieldConfigSource,
  Panel,
  RowPanel,
  VariableModel,
} from '@grafana/schema';
import type * as BarGauge from '@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen';
import type * as Stat from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type * as StateTimeline from '@grafana/schema/dist/esm/raw/composable/statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen';
import type * as Table from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';
import type * as TimeSeries from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';

/**
 * What a value of type T is in JSON. JSON has no enums: a string enum (or one of its members) is
 * written as its value, so it becomes the union of its values' literal types (`${E}`); a numeric
 * enum stays as it is (a number literal equal to one of its values is assignable to it).
 */
export type Json<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Json<U>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

/** Every panel, target, variable and annotation queries the dashboard's data source variable. */
export type PromRef = { type: 'prometheus'; uid: '${datasource}' };

/**
 * A Prometheus query. @grafana/schema types a panel's targets only as `Record<string, unknown>` and
 * ships no Prometheus query schema; these are the fields of the Prometheus plugin's query model
 * (PromQuery) that dashboards use, over the schema's common `DataQuery`.
 */
export type PromTarget = Omit<Json<DataQuery>, 'datasource'> & {
  datasource: PromRef;
  expr: string;
  editorMode?: 'code' | 'builder';
  exemplar?: boolean;
  format?: 'time_series' | 'table' | 'heatmap';
  instant?: boolean;
  interval?: string;
  legendFormat?: string;
  range?: boolean;
};

/** The keys of a plugin's custom field config (none where it has none: `Record<string, never>`). */
type CustomKeys<Custom> = string extends keyof Custom ? never : keyof Custom & string;

/**
 * One property an override sets. The schema types it `{ id: string; value?: unknown }`; here `id`
 * must name a field-config option (`unit`, `color`, `mappings`, …) or one of the plugin's custom
 * options (`custom.lineStyle`, …), and `value` must have that option's type.
 */
type OverrideProperty<Custom> =
  | { [K in Exclude<keyof FieldConfig, 'custom'>]-?: { id: K; value: Json<NonNullable<FieldConfig[K]>> } }[Exclude<
      keyof FieldConfig,
      'custom'
    >]
  | { [K in CustomKeys<Custom>]-?: { id: `custom.${K}`; value: Json<NonNullable<Custom[K]>> } }[CustomKeys<Custom>];

/** A panel's field config, with `custom` and the overrides typed by the panel plugin's own FieldConfig. */
type FieldConfigOf<Custom> = {
  defaults: Omit<Json<FieldConfig>, 'custom'> & { custom?: Json<Custom> };
  overrides: Array<
    Omit<Json<FieldConfigSource['overrides'][number]>, 'properties'> & { properties: Array<OverrideProperty<Custom>> }
  >;
};

/** A panel of plugin `Type`, with its options and field config typed by that plugin's panelcfg. */
type PanelOf<Type extends string, Options, Custom> = Omit<
  Json<Panel>,
  'type' | 'options' | 'fieldConfig' | 'targets' | 'datasource'
> & {
  type: Type;
  datasource: PromRef;
  targets: PromTarget[];
  options: Json<Options>;
  fieldConfig: FieldConfigOf<Custom>;
};

/** The panel plugins sluice's dashboards use; any other `type` is an error. */
export type KnownPanel =
  | PanelOf<'timeseries', TimeSeries.Options, TimeSeries.FieldConfig>
  | PanelOf<'stat', Stat.Options, Record<string, never>>
  | PanelOf<'bargauge', BarGauge.Options, Record<string, never>>
  | PanelOf<'table', Table.Options, Table.FieldConfig>
  | PanelOf<'state-timeline', StateTimeline.Options, StateTimeline.FieldConfig>;

/** An expanded row (its panels follow it at the top level, so its own list is empty). */
export type Row = Omit<Json<RowPanel>, 'datasource' | 'panels'> & { datasource: PromRef; panels: [] };

/**
 * A template variable. `definition` is not in the schema, but Grafana writes it for every query
 * variable (the query as text, shown in the variables list).
 */
export type Variable = Omit<Json<VariableModel>, 'datasource'> & { datasource?: PromRef; definition?: string };

/**
 * A Prometheus annotation query as Grafana 11/12 save it: the query in `target` (the Prometheus
 * plugin's prepareAnnotation moves `expr`/`step` there), and the plugin's own fields, which the
 * schema does not list, beside it.
 */
export type Annotation = Omit<Json<AnnotationQuery>, 'datasource' | 'target'> & {
  datasource: PromRef;
  target: PromTarget;
  tagKeys?: string;
  textFormat?: string;
  titleFormat?: string;
  useValueForTime?: boolean;
};

/** A sluice dashboard: a Grafana `Dashboard` with a stable uid and title, and the parts above. */
export type DashboardJson = Omit<Json<Dashboard>, 'panels' | 'templating' | 'annotations' | 'uid' | 'title'> & {
  uid: string;
  title: string;
  panels: Array<KnownPanel | Row>;
  templating: { list: Variable[] };
  annotations: { list: Annotation[] };
};
