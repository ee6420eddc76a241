"""An ODX-F document and a PDX writer built on odxtools, for the importer and build tests."""

from __future__ import annotations

import io
from pathlib import Path
from xml.etree import ElementTree

from odxtools.database import Database
from odxtools.writepdxfile import write_pdx_file

ODX_F = """<?xml version="1.0" encoding="UTF-8"?>
<ODX MODEL-VERSION="2.2.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <FLASH ID="FL.DME">
    <SHORT-NAME>FL_DME</SHORT-NAME>
    <ECU-MEMS>
      <ECU-MEM ID="EM.DME">
        <SHORT-NAME>EM_DME</SHORT-NAME>
        <MEM>
          <SESSIONS>
            <SESSION ID="SE.SWFL">
              <SHORT-NAME>SE_SWFL</SHORT-NAME>
              <DATABLOCK-REFS>
                <DATABLOCK-REF ID-REF="DB.CODE"/>
                <DATABLOCK-REF ID-REF="DB.CAL"/>
              </DATABLOCK-REFS>
            </SESSION>
          </SESSIONS>
          <DATABLOCKS>
            <DATABLOCK ID="DB.CODE" TYPE="CODE">
              <SHORT-NAME>DB_CODE</SHORT-NAME>
              <LOGICAL-BLOCK-INDEX>01</LOGICAL-BLOCK-INDEX>
              <FLASHDATA-REF ID-REF="FD.CODE"/>
              <SEGMENTS>
                <SEGMENT ID="SG.CODE.0">
                  <SHORT-NAME>SG_CODE_0</SHORT-NAME>
                  <SOURCE-START-ADDRESS>80000000</SOURCE-START-ADDRESS>
                  <UNCOMPRESSED-SIZE>50000</UNCOMPRESSED-SIZE>
                </SEGMENT>
                <SEGMENT ID="SG.CODE.1">
                  <SHORT-NAME>SG_CODE_1</SHORT-NAME>
                  <SOURCE-START-ADDRESS>80010000</SOURCE-START-ADDRESS>
                  <SOURCE-END-ADDRESS>80014E1F</SOURCE-END-ADDRESS>
                </SEGMENT>
              </SEGMENTS>
            </DATABLOCK>
            <DATABLOCK ID="DB.CAL" TYPE="DATA">
              <SHORT-NAME>DB_CAL</SHORT-NAME>
              <LOGICAL-BLOCK-INDEX>02</LOGICAL-BLOCK-INDEX>
              <FLASHDATA-REF ID-REF="FD.CAL"/>
              <SEGMENTS>
                <SEGMENT ID="SG.CAL.0">
                  <SHORT-NAME>SG_CAL_0</SHORT-NAME>
                  <SOURCE-START-ADDRESS>0000</SOURCE-START-ADDRESS>
                  <UNCOMPRESSED-SIZE>6</UNCOMPRESSED-SIZE>
                </SEGMENT>
                <SEGMENT ID="SG.CAL.1">
                  <SHORT-NAME>SG_CAL_1</SHORT-NAME>
                  <SOURCE-START-ADDRESS>0100</SOURCE-START-ADDRESS>
                  <UNCOMPRESSED-SIZE>2</UNCOMPRESSED-SIZE>
                </SEGMENT>
              </SEGMENTS>
              <TARGET-ADDR-OFFSET xsi:type="POS-OFFSET">
                <POSITIVE-OFFSET>A0000000</POSITIVE-OFFSET>
              </TARGET-ADDR-OFFSET>
            </DATABLOCK>
          </DATABLOCKS>
          <FLASHDATAS>
            <FLASHDATA ID="FD.CODE" xsi:type="EXTERN-FLASHDATA">
              <SHORT-NAME>FD_CODE</SHORT-NAME>
              <DATAFORMAT SELECTION="INTEL-HEX"/>
              <DATAFILE LATEBOUND-DATAFILE="false">dme_code.hex</DATAFILE>
            </FLASHDATA>
            <FLASHDATA ID="FD.CAL" xsi:type="INTERN-FLASHDATA">
              <SHORT-NAME>FD_CAL</SHORT-NAME>
              <DATAFORMAT SELECTION="BINARY"/>
              <DATA>CAFEBABE 0102 FFEE</DATA>
            </FLASHDATA>
          </FLASHDATAS>
        </MEM>
      </ECU-MEM>
    </ECU-MEMS>
  </FLASH>
</ODX>
"""


def write_pdx(path: Path, odx_f: str, aux: dict[str, bytes]) -> None:
    """Build a PDX with odxtools' own writer from an ODX-F document and data files."""
    database = Database()
    database.short_name = "DME_PDX"
    database.add_odx_xml_tree(ElementTree.fromstring(odx_f))
    for name, data in aux.items():
        database.add_auxiliary_file(name, io.BytesIO(data))
    database.refresh()
    assert write_pdx_file(str(path), database)
